from sandbox.stripe.standin import main

main()

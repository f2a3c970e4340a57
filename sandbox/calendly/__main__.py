from sandbox.calendly.standin import main

main()

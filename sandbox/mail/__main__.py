from sandbox.mail.catcher import main

main()

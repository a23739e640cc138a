from sageport.router.main import main

main()

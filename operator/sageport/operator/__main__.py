from sageport.operator.main import main

main()

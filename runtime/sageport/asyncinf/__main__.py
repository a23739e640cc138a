from sageport.asyncinf.main import main

main()

"""``python -m sageport.gateway``: the same as the ``sageport-gateway`` console script."""

from sageport.gateway.main import main

main()

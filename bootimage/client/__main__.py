import os
import sys

from bootimage.client.main import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)

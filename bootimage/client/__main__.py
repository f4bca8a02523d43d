import sys

from bootimage.client.main import main

sys.exit(main())

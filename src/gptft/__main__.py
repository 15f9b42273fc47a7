import sys

from gptft.commands.cli import main  # absolute, so msrun can run this file directly too

sys.exit(main())

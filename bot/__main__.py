import sys

from bot.ops.cli import main

sys.exit(main(["run", *sys.argv[1:]]))

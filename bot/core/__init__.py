"""The product's rules and use cases: plain Python in and out, no Telegram and no argparse."""

"""Telegram handlers: parse what a person sent, call one service method, render the answer."""

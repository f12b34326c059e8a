"""BingX perpetual swap (USDT-M): gzip'd frames, text Ping/Pong, no closed flag."""

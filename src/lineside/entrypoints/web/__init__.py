"""Server-rendered pages for people: the claim page a QR code opens, and their devices."""

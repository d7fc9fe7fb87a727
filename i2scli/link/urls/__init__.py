"""pyserial URL handlers that i2s puts before pyserial's own (port.py registers the package):
`protocol_rfc2217` is pyserial's rfc2217:// with what it keeps from the network bounded."""

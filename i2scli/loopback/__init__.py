"""The loopback test (`i2s test`) and `i2s doctor`: signals, measures, limits, reports, format, many boards."""

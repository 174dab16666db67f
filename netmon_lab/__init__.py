"""The demo lab's simulated world: devices and endpoints that netmon can watch on loopback."""

"""The formats the appliance and the boot environment share: the image format (v1:
manifest model, chunk names, hashing, the chunk-stream reader and writer, partition
tables), roomcast's wire format (datagrams, beacons, bitmaps), and the newc cpio archive
the appliance appends its certificate in.  The restore client imports this package in
the boot environment, so it imports only the standard library and ``zstandard``; a test
(tests/unit/test_architecture.py) loads the client's files alone to prove it.
"""

"""Chunked reads of scratch files and assets (`_bindings.read_chunked`),
against a stand-in for the host's read function, run by
tests/tests/sdk_unit.rs."""

import unittest

from ironic_hardware import HostError, _bindings


class FakeErr(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


class ScratchError_NotFound:
    def __init__(self, value):
        self.value = value


class ReadChunkedTest(unittest.TestCase):
    def setUp(self):
        ns = _bindings._Wit()
        ns.Err = FakeErr
        self._saved, _bindings._wit = _bindings._wit, ns

    def tearDown(self):
        _bindings._wit = self._saved

    def test_large_reads_come_in_chunks_up_to_the_end(self):
        data = bytes(range(256)) * ((40 << 20) // 256)
        asked = []

        def read(name, offset, n):
            asked.append((name, offset, n))
            return data[offset:offset + n]

        got = _bindings.read_chunked("scratch fw.bin", read, "fw.bin", 5, len(data))
        self.assertEqual(got, data[5:])
        m = _bindings.MAX_READ
        self.assertEqual(asked[:3], [("fw.bin", 5, m), ("fw.bin", 5 + m, m),
                                     ("fw.bin", 5 + 2 * m, len(data) - 2 * m)])
        # The last chunk ran short (the end): one more read finds nothing.
        self.assertEqual(asked[3:], [("fw.bin", len(data), 5)])
        self.assertEqual(_bindings.read_chunked("x", read, "fw.bin", 0, 0), b"")

    def test_host_errors_name_what_was_read(self):
        def read(name, offset, n):
            raise FakeErr(ScratchError_NotFound("no such file"))

        with self.assertRaises(HostError) as caught:
            _bindings.read_chunked("scratch gone.bin", read, "gone.bin", 0, 10)
        self.assertIn("scratch gone.bin", str(caught.exception))


if __name__ == "__main__":
    unittest.main()

"""Append a manifest to a component as the custom section `ironic:manifest`.

    python3 embed_manifest.py manager.wasm manifest.toml

The agent reads the manifest from this section, so the .wasm file is all
there is to deploy. (Without it the agent looks for `<stem>.manifest.toml`
beside the component instead.)
"""
import sys


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def main(wasm_path, manifest_path):
    name = b"ironic:manifest"
    data = open(manifest_path, "rb").read()
    data.decode("utf-8")  # the agent requires UTF-8
    payload = leb128(len(name)) + name + data
    # Custom sections (id 0) may appear anywhere in a component, also last.
    with open(wasm_path, "ab") as f:
        f.write(b"\x00" + leb128(len(payload)) + payload)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

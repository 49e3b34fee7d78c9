"""Minimal hand-written reader/writer for the safetensors format (no extra package needed).

Layout of a .safetensors file:
  bytes [0, 8)        u64 little-endian N = length of the JSON header
  bytes [8, 8+N)      UTF-8 JSON object: name -> {"dtype", "shape", "data_offsets": [begin, end]},
                      plus an optional "__metadata__": {str: str}. Padded with spaces to a multiple of 8.
  bytes [8+N, ...)    raw little-endian tensor data, row-major (C order); offsets are relative to here.

Tensors are stored back to back with no gaps (the official reader rejects holes), ordered like the official
writer: by element size descending, then by name; so every tensor starts at a multiple of its element size
(the header is padded to 8). Only numpy is needed (torch tensors are accepted and converted).
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
    arrays = {name: _to_numpy(t) for name, t in tensors.items()}
    for name in sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n)):
        a = arrays[name]
        raw = a.tobytes(order='C')
        header[name] = {'dtype': _NP_TO_ST[a.dtype], 'shape': list(a.shape),
                        'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
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
    end = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets']):
        if info['data_offsets'][0] != end:
            raise ValueError('safetensors_io: %s: tensor %r does not start where the previous one ends' % (path, name))
        end = info['data_offsets'][1]
        dt = _ST_TO_NP[info['dtype']]
        b, e = info['data_offsets']
        a = np.frombuffer(data[base + b:base + e], dtype=dt).reshape(info['shape'])
        if a.nbytes != e - b:
            raise ValueError('safetensors_io: %s: tensor %r size does not match its shape' % (path, name))
        out[name] = a.copy()
    if base + end != len(data):
        raise ValueError('safetensors_io: %s: data section has %d bytes, tensors cover %d' % (path, len(data) - base, end))
    return out, meta

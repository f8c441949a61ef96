// Zip reading and writing for scripts/fuzz-checkpoints.js: enough for the archives TorchScript
// and torch.save write, to rewrite one entry and give LibTorch and our reader a valid zip again.
'use strict';
const zlib = require('zlib');

function readZip(buf) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('no end of central directory');
  const count = buf.readUInt16LE(eocd + 10);
  let pos = buf.readUInt32LE(eocd + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(pos) !== 0x02014b50) throw new Error('bad central header');
    const method = buf.readUInt16LE(pos + 10);
    const csize = buf.readUInt32LE(pos + 20);
    const nameLen = buf.readUInt16LE(pos + 28);
    const extraLen = buf.readUInt16LE(pos + 30);
    const commentLen = buf.readUInt16LE(pos + 32);
    const offset = buf.readUInt32LE(pos + 42);
    const name = buf.toString('latin1', pos + 46, pos + 46 + nameLen);
    const lNameLen = buf.readUInt16LE(offset + 26);
    const lExtraLen = buf.readUInt16LE(offset + 28);
    const start = offset + 30 + lNameLen + lExtraLen;
    const raw = buf.subarray(start, start + csize);
    const data = method === 8 ? zlib.inflateRawSync(raw) : Buffer.from(raw);
    entries.push({ name, data, centralAt: pos, localAt: offset });
    pos += 46 + nameLen + extraLen + commentLen;
  }
  return { entries, eocd, centralAt: buf.readUInt32LE(eocd + 16) };
}

// Entries stored (uncompressed) unless `deflate`, each data start aligned to 64 bytes as PyTorch
// writes them. `sameBytesAs: i` gives an entry no bytes of its own: its central record points at
// entry i's (a crafted archive, for the reader's tests).
function writeZip(entries) {
  const parts = [];
  const central = [];
  const placed = [];
  let offset = 0;
  for (const { name, data, deflate, sameBytesAs } of entries) {
    const nameBuf = Buffer.from(name, 'latin1');
    let at = sameBytesAs === undefined ? undefined : placed[sameBytesAs];
    if (at === undefined) {
      const body = deflate ? zlib.deflateRawSync(data) : data;
      const method = deflate ? 8 : 0;
      const headerLen = 30 + nameBuf.length;
      const pad = (64 - ((offset + headerLen + 4) % 64)) % 64;
      const extra = Buffer.alloc(pad === 0 ? 0 : pad + 4);
      if (extra.length) {
        extra.writeUInt16LE(0x4746, 0); // 'FB': padding, as PyTorch's writer uses
        extra.writeUInt16LE(pad, 2);
      }
      const crc = zlib.crc32(data) >>> 0;
      const local = Buffer.alloc(30);
      local.writeUInt32LE(0x04034b50, 0);
      local.writeUInt16LE(20, 4);
      local.writeUInt16LE(method, 8);
      local.writeUInt32LE(crc, 14);
      local.writeUInt32LE(body.length, 18);
      local.writeUInt32LE(data.length, 22);
      local.writeUInt16LE(nameBuf.length, 26);
      local.writeUInt16LE(extra.length, 28);
      parts.push(local, nameBuf, extra, body);
      at = { offset, crc, csize: body.length, size: data.length, method };
      offset += 30 + nameBuf.length + extra.length + body.length;
    }
    placed.push(at);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(at.method, 10);
    c.writeUInt32LE(at.crc, 16);
    c.writeUInt32LE(at.csize, 20);
    c.writeUInt32LE(at.size, 24);
    c.writeUInt16LE(nameBuf.length, 28);
    c.writeUInt32LE(at.offset, 42);
    central.push(c, nameBuf);
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

module.exports = { readZip, writeZip };

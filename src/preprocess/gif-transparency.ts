/**
 * The colour Pillow shows for transparent pixels of a GIF's first frame. Pillow opens that
 * frame as a palette image and `convert('RGB')` ignores transparency, so a transparent pixel
 * gets its palette entry's colour; libvips (libnsgif) returns it as transparent black instead.
 * GIF alpha is all or nothing, so flattening onto this colour reproduces Pillow exactly.
 */

export type Rgb = readonly [number, number, number];

function tableBytes(flags: number): number {
  return flags & 0x80 ? 3 * (1 << ((flags & 0x07) + 1)) : 0;
}

/**
 * The palette colour of the first frame's transparent index, or `undefined` when the frame
 * has no transparency or the stream cannot be walked that far (the decoder then reports it).
 */
export function gifTransparentColour(bytes: Uint8Array): Rgb | undefined {
  if (bytes.length < 13) return undefined;
  const screenFlags = bytes[10] as number;
  const globalTable = 13;
  let offset = globalTable + tableBytes(screenFlags);
  let transparentIndex: number | undefined;
  while (offset < bytes.length) {
    const introducer = bytes[offset];
    if (introducer === 0x21) {
      const label = bytes[offset + 1];
      // Graphic Control Extension: packed flags, delay (2 bytes), transparent colour index.
      if (label === 0xf9 && bytes[offset + 2] === 4 && offset + 6 < bytes.length) {
        transparentIndex = ((bytes[offset + 3] as number) & 1) === 1 ? (bytes[offset + 6] as number) : undefined;
      }
      offset += 2;
      while (offset < bytes.length && bytes[offset] !== 0) offset += 1 + (bytes[offset] as number);
      offset += 1;
    } else if (introducer === 0x2c) {
      if (transparentIndex === undefined || offset + 10 > bytes.length) return undefined;
      const imageFlags = bytes[offset + 9] as number;
      const [table, size] = imageFlags & 0x80 ? [offset + 10, tableBytes(imageFlags)] : [globalTable, tableBytes(screenFlags)];
      const entry = table + 3 * transparentIndex;
      if (entry + 3 > table + size || entry + 3 > bytes.length) return undefined;
      return [bytes[entry] as number, bytes[entry + 1] as number, bytes[entry + 2] as number];
    } else {
      return undefined;
    }
  }
  return undefined;
}

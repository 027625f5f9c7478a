/**
 * CMYK to RGB the way Pillow's `convert('RGB')` does it (libImaging/Convert.c, cmyk2rgb):
 * R = (255 - K) - (C × (255 - K)) / 255, rounded as Pillow's MULDIV255, with no colour
 * management. This is what a torchvision user's model was fed for CMYK JPEGs; an ICC
 * conversion (libvips' default) gives visibly different colours (15 levels apart on average
 * on the fixture).
 */
export function cmykToRgb(cmyk: Uint8Array): Uint8Array {
  const pixels = cmyk.length >> 2;
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0, j = 0; i < cmyk.length; i += 4, j += 3) {
    const nk = 255 - (cmyk[i + 3] as number);
    for (let c = 0; c < 3; c++) {
      const t = (cmyk[i + c] as number) * nk + 128;
      rgb[j + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return rgb;
}

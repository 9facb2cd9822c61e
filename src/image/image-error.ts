// Why an image cannot be served: its own module, for image.ts and open-beneath.ts alike.

/** Why an image cannot be served, phrased for the administrator. */
export class ImageError extends Error {
  constructor(readonly image: string, readonly why: string, readonly code?: string) {
    super(`${image}: ${why}`);
    this.name = 'ImageError';
  }
}

/**
 * Image preprocessing: bytes of an uploaded image to a model's normalized input tensor,
 * faithful to torchvision's Resize / CenterCrop / ToTensor / Normalize on Pillow images.
 * Knows no HTTP and no model runtime; errors come from the catalog in ../errors.ts.
 */
export type { ImageLimits, PreprocessSpec } from './spec.js';
export { IMAGENET_PREPROCESS } from './spec.js';
export type { ImageFormat } from './image-format.js';
export { detectImageFormat } from './image-format.js';
export type { ImagePreprocessor, PreprocessedImage } from './preprocessor.js';
export { createImagePreprocessor } from './preprocessor.js';
export { mainThreadTurns, type TurnQueue } from './turns.js';
export { createDecodeBudget, estimateDecodeBytes, type DecodeBudget, type DecodeWait } from './decode-budget.js';
export { createDecodeThreads, type DecodeThreads } from './decode-threads.js';

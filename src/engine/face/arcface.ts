// ArcFace recognition as insightface 0.7.3's ArcFaceONNX (model_zoo/arcface_onnx.py; instantid.md
// §2.6): the norm_crop face, RGB (cv2 blob with swapRB from BGR), (pixel − 127.5) / 127.5, NCHW;
// the output is flattened and returned RAW. InstantID feeds that un-normalised vector to its
// Resampler, so normalising here would change every image it makes.
//
// insightface switches mean/std to 0/1 for old MXNet exports whose first nodes are Sub and Mul (they
// normalise inside the graph). glintr100 is not one of them; such a model needs
// { inputMean: 0, inputStd: 1 } here, since reading node names would mean parsing the whole file.
import { existsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { EngineError } from '../errors.js';
import { createSession, type Session, type SessionOptions } from '../onnx/session.js';
import { normCrop, type WarpOptions } from './align.js';
import { assertRgbImage, type Keypoints, type RgbImage } from './types.js';

export interface ArcFaceOptions extends Pick<SessionOptions, 'executionProvider' | 'intraOpThreads' | 'deviceId' | 'worker'> {
  inputMean?: number;
  inputStd?: number;
}

export class ArcFaceRecognizer {
  private constructor(
    private readonly session: Session,
    readonly modelPath: string,
    /** Side of the square crop the model takes (112 for glintr100 / w600k). */
    readonly inputSize: number,
    private readonly mean: number,
    private readonly std: number,
  ) {}

  static async load(modelPath: string, options: ArcFaceOptions = {}): Promise<ArcFaceRecognizer> {
    if (!existsSync(modelPath)) throw missingRecognizer(modelPath);
    const { inputMean = 127.5, inputStd = 127.5, ...sessionOptions } = options;
    const session = await createSession(modelPath, { interOpThreads: 1, ...sessionOptions });
    const input = session.inputs[0];
    const [, channels, h, w] = input?.shape ?? [];
    // insightface's model router: a square input of at least 112, divisible by 16, is recognition.
    const size = typeof h === 'number' ? h : 112;
    if (
      session.inputs.length !== 1 || session.outputs.length !== 1 || input?.shape.length !== 4 ||
      (typeof channels === 'number' && channels !== 3) || (typeof w === 'number' && w !== size) || size < 112 || size % 16 !== 0
    ) {
      await session.dispose();
      throw new EngineError(
        'recognizer_unsupported',
        `${modelPath} is not an ArcFace recognition model (expected one [N, 3, S, S] input with S ≥ 112, S % 16 = 0, and one output)`,
      );
    }
    return new ArcFaceRecognizer(session, modelPath, size, inputMean, inputStd);
  }

  /** The embedding of an already aligned inputSize × inputSize RGB crop, un-normalised. */
  async embed(crop: RgbImage, signal?: AbortSignal): Promise<Float32Array> {
    assertRgbImage(crop, 'face crop');
    const s = this.inputSize;
    if (crop.width !== s || crop.height !== s) throw new RangeError(`face crop is ${crop.width}×${crop.height}, the model takes ${s}×${s}`);
    const plane = s * s;
    const data = new Float32Array(3 * plane); // [1, 3, S, S], RGB planes
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) data[c * plane + i] = (crop.data[i * 3 + c]! - this.mean) / this.std;
    }
    const feeds = { [this.session.inputNames[0]!]: { dtype: 'float32' as const, dims: [1, 3, s, s], data } };
    const outputs = await this.session.run(feeds, { transfer: true, signal });
    const out = outputs[this.session.outputNames[0]!];
    if (!out || out.dtype !== 'float32') throw new EngineError('recognizer_unsupported', `${this.modelPath}: the output is not float32`);
    return out.data as Float32Array; // [1, D] flattened
  }

  /** insightface's ArcFaceONNX.get: align by the keypoints, then embed. */
  async embedFace(image: RgbImage, kps: Keypoints, options: WarpOptions & { signal?: AbortSignal } = {}): Promise<Float32Array> {
    const { crop } = normCrop(image, kps, this.inputSize, options);
    return this.embed(crop, options.signal);
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}

export function missingRecognizer(path: string): EngineError {
  return new EngineError(
    'model_missing',
    `face recognition model not found: ${path}. InstantID uses insightface's antelopev2 pack (glintr100.onnx for recognition): ` +
      `download antelopev2.zip (listed in insightface's python-package README; InstantID's README links a copy) and unzip it ` +
      `into ${dirname(path)} so that ${basename(path)} sits directly there, not in a nested antelopev2/antelopev2/ folder. ` +
      `insightface's models are licensed for non-commercial research use only.`,
  );
}

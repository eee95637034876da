// The frames of the binary data-channel protocol (docs/protocol.md, section 2), parsed by
// one pure function so that they can be tested without a browser.
//
// A frame is `kind u8 | id u32 BE | payload`. Sizes are u64 on the wire; files are far
// below 2^53 bytes, so they are read as JavaScript numbers.

/** `{"type":"get"}` is answered by START, DATA…, END, or by one ERROR. */
export const FrameKind = { Start: 1, Data: 2, End: 3, Error: 4 } as const;

export type Frame =
  | { kind: typeof FrameKind.Start; id: number; total: number; offset: number; length: number; contentType: string }
  | { kind: typeof FrameKind.Data; id: number; bytes: Uint8Array }
  | { kind: typeof FrameKind.End; id: number }
  | { kind: typeof FrameKind.Error; id: number; status: number; message: string };

/** Why a message could not be read as a frame; `id` is set when the header was readable. */
export class FrameError extends Error {
  constructor(
    message: string,
    readonly id: number | null,
  ) {
    super(message);
  }
}

const HEADER = 5;
const START_FIXED = HEADER + 24;
const ERROR_FIXED = HEADER + 2;
/** The first byte of the original protocol's JSON messages; never a frame kind. */
export const JSON_OPEN_BRACE = 0x7b;

const utf8 = new TextDecoder();

/** Whether a binary message belongs to the original (JSON) protocol, not to this one. */
export function isJsonMessage(buf: ArrayBuffer): boolean {
  return buf.byteLength > 0 && new Uint8Array(buf, 0, 1)[0] === JSON_OPEN_BRACE;
}

/** Parses one binary message; throws `FrameError` for a truncated or unknown frame. */
export function parseFrame(buf: ArrayBuffer): Frame {
  if (buf.byteLength < HEADER) {
    throw new FrameError(`frame of ${buf.byteLength} bytes is shorter than its header`, null);
  }
  const view = new DataView(buf);
  const kind = view.getUint8(0);
  const id = view.getUint32(1, false);
  switch (kind) {
    case FrameKind.Start: {
      if (buf.byteLength < START_FIXED) {
        throw new FrameError(`START frame of ${buf.byteLength} bytes is truncated`, id);
      }
      return {
        kind,
        id,
        total: u64(view, HEADER),
        offset: u64(view, HEADER + 8),
        length: u64(view, HEADER + 16),
        contentType: utf8.decode(new Uint8Array(buf, START_FIXED)),
      };
    }
    case FrameKind.Data:
      return { kind, id, bytes: new Uint8Array(buf, HEADER) };
    case FrameKind.End:
      return { kind, id };
    case FrameKind.Error: {
      if (buf.byteLength < ERROR_FIXED) {
        throw new FrameError(`ERROR frame of ${buf.byteLength} bytes is truncated`, id);
      }
      return {
        kind,
        id,
        status: view.getUint16(HEADER, false),
        message: utf8.decode(new Uint8Array(buf, ERROR_FIXED)),
      };
    }
    default:
      throw new FrameError(`unknown frame kind ${kind}`, id);
  }
}

function u64(view: DataView, at: number): number {
  const value = view.getBigUint64(at, false);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FrameError(`size ${value} is out of range`, view.getUint32(1, false));
  }
  return Number(value);
}

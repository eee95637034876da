// The gateway's HTTP API as the pages use it (docs/api.md): the shapes of its answers and
// one `request` helper that turns `{"success": false, "error"}` into an `ApiError`.

export interface User {
  id: number | string;
  username: string;
  role: 'admin' | 'user';
  is_banned: boolean;
  created_at: string;
}

export interface NodeResources {
  max_downloads: number;
  max_transcodes: number;
  disk_space_gb: number;
  disk_free_gb?: number;
  /** Bytes the node's tasks hold, and its quota for them (0: none). */
  disk_used_bytes?: number;
  disk_quota_bytes?: number;
}

export interface GatewayNode {
  id: string;
  name: string;
  address: string;
  status: string;
  last_seen: string;
  capabilities: string[];
  resources: NodeResources;
  metadata?: { version?: string; arch?: string };
  active_tasks?: number;
  /** `original`: the original's Go worker, joined through /ws/nodes (P2P only, original protocol). */
  kind?: 'magnetm3u8' | 'original';
}

export type TaskStatus =
  | 'pending'
  | 'downloading'
  | 'completed'
  | 'transcoding'
  | 'ready'
  | 'error'
  | 'cancelled';

export interface Task {
  id: string;
  magnet_url: string;
  status: TaskStatus | string;
  progress: number;
  speed: number;
  size: number;
  downloaded: number;
  files?: string[];
  torrent_name: string;
  m3u8_path?: string;
  srts?: string[];
  created_at: string;
  updated_at?: string;
  worker_id: string;
  error?: string;
  detail?: string;
  transcode_path?: string;
  peers?: number;
  /** Files in the torrent; `files` of a listed task holds only the first few. */
  file_count?: number;
  /** Whether the caller submitted it (or is an admin): then it may delete it. */
  mine?: boolean;
  /** It plays already while it downloads (progressive playback); always once ready. */
  playable?: boolean;
  /** Percent of the transcode, apart from the download's `progress`. */
  transcode_progress?: number;
  /** Who runs the task's node (see `GatewayNode.kind`). */
  worker_kind?: 'magnetm3u8' | 'original';
  /** Paused by its submitter: no transfers until resumed. */
  paused?: boolean;
  /** Bytes uploaded to peers, and that over the size. */
  uploaded?: number;
  ratio?: number;
  /** Its completed download still seeds; else `seeding_stopped` says why it stopped. */
  seeding?: boolean;
  seeding_stopped?: string;
  /** Never evicted to make room under the node's disk quota. */
  pinned?: boolean;
  /** Its payload was evicted to make room; its video still plays. */
  payload_evicted?: boolean;
  /** Bytes its payload and video hold. */
  disk_bytes?: number;
  /** The torrent's videos (a season pack's episodes), each with its own HLS folder. */
  videos?: TaskVideo[];
}

/** One video of a task's torrent. */
export interface TaskVideo {
  /** Index in the torrent's files: what `POST /api/tasks/:id/play` takes. */
  index: number;
  path: string;
  size: number;
  downloaded: number;
  /** The video being fetched and played. */
  current: boolean;
  /** Its HLS folder under the task's: '' (the task's own) or 'v<index>'. */
  playlist: string;
  state: '' | 'queued' | 'transcoding' | 'playable' | 'ready' | 'stopped' | 'error';
  transcode_progress: number;
  error: string;
}

/** A node whose task list could not be had: its tasks are missing from the list. */
export interface NodeError {
  node_id: string;
  error: string;
}

/** One `task` event of `GET /api/events`: a partial task, merged into the one shown. */
export type TaskEvent = Partial<Task> & { id: string };

/** The task event a `task` message of `GET /api/events` carries; null when it is not one. */
export function taskEvent(e: Event): TaskEvent | null {
  try {
    const update = JSON.parse((e as MessageEvent<string>).data) as TaskEvent | null;
    return update && typeof update.id === 'string' ? update : null;
  } catch {
    return null;
  }
}

export interface IceServersAnswer {
  iceServers: RTCIceServer[];
  ttl?: number;
}

/** A failed call: the HTTP status (0 when the network failed), the server's `error` text,
 * its machine `code` (docs/api.md, "Error codes"), and how long to wait (`Retry-After`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
}

type Body = Record<string, unknown> & { success?: boolean; error?: string; code?: string };

/** Calls the API; resolves with the whole JSON answer or rejects with an `ApiError`. */
export async function request<T extends object>(
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<T & Body> {
  let res: Response;
  try {
    // A form (a file upload) goes as multipart, with the boundary the browser chooses.
    const form = body instanceof FormData;
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers:
        body === undefined || form ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : form ? body : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `network error: ${e instanceof Error ? e.message : String(e)}`);
  }
  let json: Body | null = null;
  try {
    json = (await res.json()) as Body;
  } catch {
    // Not JSON (a proxy's error page, an empty body): the status says what happened.
  }
  if (!res.ok || !json || json.success === false) {
    const text = json && typeof json.error === 'string' ? json.error : `${res.status} ${res.statusText}`.trim();
    const code = json && typeof json.code === 'string' ? json.code : null;
    const wait = Number(res.headers.get('Retry-After'));
    throw new ApiError(res.status, text, code, Number.isFinite(wait) && wait > 0 ? wait : null);
  }
  return json as T & Body;
}

export const api = {
  /** `null` when accounts are on and nobody is logged in (401). */
  async me(): Promise<{ user: User; authEnabled: boolean } | null> {
    try {
      const r = await request<{ data: User; auth_enabled?: boolean }>('GET', '/api/auth/me');
      return { user: r.data, authEnabled: r.auth_enabled !== false };
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return null;
      throw e;
    }
  },
  login: (username: string, password: string) =>
    request<{ data: User }>('POST', '/api/auth/login', { username, password }),
  register: (username: string, password: string) =>
    request<{ data: User }>('POST', '/api/auth/register', { username, password }),
  logout: () => request<object>('POST', '/api/auth/logout'),
  users: async () => (await request<{ data: User[] }>('GET', '/api/admin/users')).data ?? [],
  setBanned: (id: User['id'], banned: boolean) =>
    request<object>('PATCH', `/api/admin/users/${encodeURIComponent(String(id))}/ban`, { banned }),
  nodes: async () => (await request<{ data: GatewayNode[] | null }>('GET', '/api/nodes')).data ?? [],
  tasks: async () => {
    const data = (await request<{ data: { tasks: Task[] | null; node_errors?: NodeError[] } }>('GET', '/api/tasks')).data;
    return { tasks: data?.tasks ?? [], nodeErrors: data?.node_errors ?? [] };
  },
  addUser: (username: string, password: string, admin: boolean) =>
    request<{ data: User }>('POST', '/api/admin/users', { username, password, admin }),
  task: async (id: string) => (await request<{ data: Task }>('GET', `/api/tasks/${encodeURIComponent(id)}`)).data,
  submit: (magnetUrl: string, workerId: string) =>
    request<{ data?: Task; message?: string }>('POST', '/api/tasks/submit', {
      worker_id: workerId,
      magnet_url: magnetUrl,
    }),
  /** A `.torrent` file, as a multipart form. */
  submitTorrent: (file: File, workerId: string) => {
    const form = new FormData();
    form.append('worker_id', workerId);
    form.append('torrent', file, file.name);
    return request<{ data?: Task; message?: string }>('POST', '/api/tasks/submit', form);
  },
  deleteTask: (id: string) => request<object>('DELETE', `/api/tasks/${encodeURIComponent(id)}`),
  pauseTask: (id: string) => request<{ data?: Task }>('POST', `/api/tasks/${encodeURIComponent(id)}/pause`),
  resumeTask: (id: string) => request<{ data?: Task }>('POST', `/api/tasks/${encodeURIComponent(id)}/resume`),
  playVideo: (id: string, file: number) =>
    request<{ data?: Task }>('POST', `/api/tasks/${encodeURIComponent(id)}/play`, { file }),
  pinTask: (id: string, pinned: boolean) =>
    request<{ data?: Task }>('POST', `/api/tasks/${encodeURIComponent(id)}/${pinned ? 'pin' : 'unpin'}`),
  stopSeeding: (id: string) => request<{ data?: Task }>('POST', `/api/tasks/${encodeURIComponent(id)}/stop`),
  retryTask: (id: string) => request<{ data?: Task }>('POST', `/api/tasks/${encodeURIComponent(id)}/retry`),
  iceServers: async () => (await request<IceServersAnswer>('GET', '/api/webrtc/ice-servers')).iceServers ?? [],
};

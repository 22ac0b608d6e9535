/**
 * Rooms as a client names them are relative to the token's tenant: `tenant`, `workflow:<id>`,
 * `process:<id>`, `user:<id>`. Inside the server they become `t:<tenant>:<room>`, so no input can
 * name another tenant's room.
 */
export type RoomKind = 'tenant' | 'workflow' | 'process' | 'user';
export interface ParsedRoom {
  kind: RoomKind;
  /** The id after the colon; empty for `tenant`. */
  id: string;
  /** The canonical tenant-relative name. */
  name: string;
}

const ID = /^[A-Za-z0-9_.@-]{1,128}$/;

export function parseRoom(room: unknown): ParsedRoom | null {
  if (typeof room !== 'string' || room.length > 160) return null;
  if (room === 'tenant') return { kind: 'tenant', id: '', name: 'tenant' };
  const colon = room.indexOf(':');
  if (colon < 0) return null;
  const kind = room.slice(0, colon);
  const id = room.slice(colon + 1);
  if ((kind === 'workflow' || kind === 'process' || kind === 'user') && ID.test(id)) {
    return { kind, id, name: room };
  }
  return null;
}

export const roomOf = {
  tenant: () => 'tenant',
  workflow: (id: string) => `workflow:${id}`,
  process: (id: string) => `process:${id}`,
  user: (id: string) => `user:${id}`,
};

/** Server-internal, tenant-qualified room name. Tenant ids never contain ':' (see TENANT_ID). */
export function internalRoom(tenant: string, room: string): string {
  return `t:${tenant}:${room}`;
}

export const TENANT_ID = /^[A-Za-z0-9_.-]{1,64}$/;

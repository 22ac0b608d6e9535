import type { Process, Workflow } from '../../shared/protocol.js';
import { api } from './api.js';

/** A three-stage workflow: todo → doing → done, and doing → todo. */
export async function createBoard(url: string, adminToken: string): Promise<Workflow> {
  const res = await api<{ data: Workflow }>(url, 'POST', '/api/workflows', {
    token: adminToken,
    body: { name: 'Board', stages: ['todo', 'doing', 'done'], transitions: { todo: ['doing'], doing: ['done', 'todo'] } },
  });
  if (res.status !== 201) throw new Error(`createWorkflow: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.data;
}

export async function createProcess(url: string, token: string, workflowId: string, title = 'Card'): Promise<Process> {
  const res = await api<{ data: Process }>(url, 'POST', '/api/processes', { token, body: { workflowId, title } });
  if (res.status !== 201) throw new Error(`createProcess: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.data;
}

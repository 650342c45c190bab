// Live task events for WebSocket subscribers and kill signals, in process (Redis pub/sub in cluster mode).
import { EventEmitter } from 'node:events';
import type { TaskStatus } from './tasks/statuses.js';

export interface TaskEvent {
  taskId: number;
  type: TaskStatus;
  message: unknown;
  /** Extra top-level fields on the frame (task_postprocess_end carries status and pexit). */
  extra?: Record<string, unknown>;
}

export class TaskEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(event: TaskEvent): void {
    this.emitter.emit(`task:${event.taskId}`, event);
  }

  subscribe(taskId: number, listener: (e: TaskEvent) => void): () => void {
    const name = `task:${taskId}`;
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }

  requestKill(taskId: number): void {
    this.emitter.emit(`kill:${taskId}`);
  }

  onKill(taskId: number, listener: () => void): () => void {
    const name = `kill:${taskId}`;
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }
}

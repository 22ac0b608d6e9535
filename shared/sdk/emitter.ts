/** A tiny typed event emitter that runs in browsers and Node alike (no node:events). */
export class Emitter<Events extends Record<string, (arg: never) => void>> {
  private readonly handlers = new Map<keyof Events, Set<(arg: never) => void>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, handler: Events[K]): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler);
    return () => this.off(event, handler);
  }

  off<K extends keyof Events>(event: K, handler: Events[K]): void {
    this.handlers.get(event)?.delete(handler);
  }

  protected emit<K extends keyof Events>(event: K, arg: Parameters<Events[K]>[0]): void {
    for (const handler of [...(this.handlers.get(event) ?? [])]) {
      try {
        (handler as (a: typeof arg) => void)(arg);
      } catch (err) {
        // A throwing listener must not stop delivery to the others, nor break the SDK's state.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

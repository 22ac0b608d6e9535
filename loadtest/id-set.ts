/**
 * A set of event ids stored as a bitmap from the first id seen: ids of one tenant are dense and
 * increasing, so a thousand subscribers × a hundred thousand events stay in a few MB.
 * Ids below the first one (late, out of order) go to a small Set.
 */
export class IdSet {
  size = 0;
  private base = -1;
  private bits = new Uint8Array(128);
  private readonly below = new Set<number>();

  /** Adds an id; false when it was already there (a duplicate). */
  add(id: number): boolean {
    if (this.base < 0) this.base = id;
    if (id < this.base) {
      if (this.below.has(id)) return false;
      this.below.add(id);
      this.size++;
      return true;
    }
    const off = id - this.base;
    const byte = off >> 3;
    if (byte >= this.bits.length) {
      let len = this.bits.length * 2;
      while (len <= byte) len *= 2;
      const next = new Uint8Array(len);
      next.set(this.bits);
      this.bits = next;
    }
    const mask = 1 << (off & 7);
    if (this.bits[byte]! & mask) return false;
    this.bits[byte] = this.bits[byte]! | mask;
    this.size++;
    return true;
  }

  has(id: number): boolean {
    if (this.base < 0) return false;
    if (id < this.base) return this.below.has(id);
    const off = id - this.base;
    const byte = off >> 3;
    return byte < this.bits.length && (this.bits[byte]! & (1 << (off & 7))) !== 0;
  }
}

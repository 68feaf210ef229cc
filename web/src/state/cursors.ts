// The stream's resume point: per conversation, the highest seq the page
// holds, and the epoch those seqs belong to. Passed on every (re)subscribe,
// so the server replays exactly what came after; kept in localStorage so a
// reloaded page can tell whether the server's data was reset meanwhile.

export interface SavedCursors {
  epoch: string;
  cursors: Record<string, number>;
}

export class CursorBook {
  private seqs = new Map<string, number>();
  epoch = "";

  /** Seq held for `conversationId` (0 = none). */
  get(conversationId: string): number {
    return this.seqs.get(conversationId) ?? 0;
  }

  /** Moves a cursor forward; returns true if `seq` is new (above the cursor). */
  advance(conversationId: string, seq: number): boolean {
    if (seq <= this.get(conversationId)) return false;
    this.seqs.set(conversationId, seq);
    return true;
  }

  forget(conversationId: string): void {
    this.seqs.delete(conversationId);
  }

  clear(): void {
    this.seqs.clear();
    this.epoch = "";
  }

  /** What SubscribeRequest carries. */
  toRequest(): { epoch: string; cursors: { conversationId: string; seq: number }[] } {
    const cursors = [...this.seqs]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([conversationId, seq]) => ({ conversationId, seq }));
    return { epoch: this.epoch, cursors };
  }

  save(): SavedCursors {
    return { epoch: this.epoch, cursors: Object.fromEntries(this.seqs) };
  }

  /**
   * Takes saved cursors if they belong to `epoch` (the server's current one);
   * cursors of another epoch are void (the server's data was reset).
   */
  restore(saved: SavedCursors | undefined, epoch: string): boolean {
    if (!saved || saved.epoch !== epoch) return false;
    for (const [conversationId, seq] of Object.entries(saved.cursors)) {
      if (Number.isSafeInteger(seq) && seq > 0) this.advance(conversationId, seq);
    }
    return true;
  }
}

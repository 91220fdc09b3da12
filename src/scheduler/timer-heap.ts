/** A binary min-heap of (due, id): one timer for the whole queue instead of one per entry. */
export class TimerHeap {
  private due: number[] = [];
  private ids: string[] = [];

  get size(): number {
    return this.ids.length;
  }

  push(due: number, id: string): void {
    this.due.push(due);
    this.ids.push(id);
    let i = this.ids.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.due[parent] <= this.due[i]) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  peekDue(): number | undefined {
    return this.due[0];
  }

  pop(): { due: number; id: string } | undefined {
    if (this.ids.length === 0) return undefined;
    const top = { due: this.due[0], id: this.ids[0] };
    const lastDue = this.due.pop()!;
    const lastId = this.ids.pop()!;
    if (this.ids.length > 0) {
      this.due[0] = lastDue;
      this.ids[0] = lastId;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.ids.length && this.due[l] < this.due[m]) m = l;
        if (r < this.ids.length && this.due[r] < this.due[m]) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }

  private swap(a: number, b: number): void {
    [this.due[a], this.due[b]] = [this.due[b], this.due[a]];
    [this.ids[a], this.ids[b]] = [this.ids[b], this.ids[a]];
  }
}

/**
 * 32-bit Mersenne Twister, the engine behind torch's CPU generator (`at::mt19937`), which draws the
 * same sequence as C++ `std::mt19937(seed32)`. Seed 0 gives 2357136044, 2546248239, 3071714933, …
 */
const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class Mt19937 {
  private readonly state = new Uint32Array(N);
  /** Index of the next word to temper; N means the block is spent and the next draw twists. */
  private next = N;

  constructor(seed32 = 5489) {
    this.seed(seed32);
  }

  /** Knuth's initialisation; only the low 32 bits of `seed32` count, as in torch. */
  seed(seed32: number): void {
    const s = this.state;
    s[0] = seed32 >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = s[i - 1]!;
      s[i] = Math.imul(1812433253, prev ^ (prev >>> 30)) + i;
    }
    // torch starts with `left = 1`, so the very first draw twists: the same as an exhausted block.
    this.next = N;
  }

  /** The next tempered 32-bit word, as an unsigned number. */
  nextUint32(): number {
    if (this.next >= N) this.twist();
    let y = this.state[this.next++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Fills `out` with consecutive draws; the bulk form keeps the hot loop free of call overhead. */
  fill(out: Uint32Array): void {
    const s = this.state;
    for (let i = 0; i < out.length; i++) {
      if (this.next >= N) this.twist();
      let y = s[this.next++]!;
      y ^= y >>> 11;
      y ^= (y << 7) & 0x9d2c5680;
      y ^= (y << 15) & 0xefc60000;
      y ^= y >>> 18;
      out[i] = y;
    }
  }

  private twist(): void {
    const s = this.state;
    for (let i = 0; i < N; i++) {
      const y = (s[i]! & UPPER_MASK) | (s[(i + 1) % N]! & LOWER_MASK);
      s[i] = s[(i + M) % N]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.next = 0;
  }
}

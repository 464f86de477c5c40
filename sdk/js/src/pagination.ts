/**
 * Lists: every `list()` returns a {@link PagePromise}. Await it for the first
 * {@link Page} (`data`, `nextCursor`), or iterate it with `for await` to walk every
 * item of every page, fetching the next page only when the current one is used up.
 *
 * A filtered listing may answer a short or even empty page that still has a
 * `nextCursor`; iteration follows it until the cursor is `null`.
 *
 * @module
 */

/** The wire envelope of a listing. */
export interface ListEnvelope<T> {
  data: T[];
  next_cursor: string | null;
}

/** Fetches the page after `cursor` (or the first page for `undefined`). */
export type PageFetcher<T> = (cursor: string | undefined) => Promise<Page<T>>;

/** One page of a listing; also async-iterable over the items of this and all later pages. */
export class Page<T> implements AsyncIterable<T> {
  /** The items of this page. */
  readonly data: T[];
  /** The cursor of the next page, or `null` on the last page. */
  readonly nextCursor: string | null;
  readonly #fetch: PageFetcher<T>;

  constructor(envelope: ListEnvelope<T>, fetch: PageFetcher<T>) {
    this.data = envelope.data;
    this.nextCursor = envelope.next_cursor;
    this.#fetch = fetch;
  }

  /** True when another page follows. */
  get hasMore(): boolean {
    return this.nextCursor !== null;
  }

  /** The next page, or `null` when this is the last one. */
  async nextPage(): Promise<Page<T> | null> {
    return this.nextCursor === null ? null : this.#fetch(this.nextCursor);
  }

  /** This page and every later one. */
  async *pages(): AsyncGenerator<Page<T>, void, undefined> {
    yield this;
    for (let page = await this.nextPage(); page !== null; page = await page.nextPage()) yield page;
  }

  /** Every item of this page and of every later page. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page.data;
  }
}

/**
 * A pending first page: `await` it for the {@link Page}, or `for await` over it for
 * every item of every page. The first page is fetched once, when first needed.
 */
export class PagePromise<T> implements PromiseLike<Page<T>>, AsyncIterable<T> {
  readonly #fetch: PageFetcher<T>;
  #first: Promise<Page<T>> | undefined;

  constructor(fetch: PageFetcher<T>) {
    this.#fetch = fetch;
  }

  #page(): Promise<Page<T>> {
    this.#first ??= this.#fetch(undefined);
    return this.#first;
  }

  then<R1 = Page<T>, R2 = never>(
    onfulfilled?: ((page: Page<T>) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#page().then(onfulfilled, onrejected);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    yield* await this.#page();
  }
}

/**
 * The base of every resource: access to the request core, and the one way lists
 * are fetched.
 *
 * @module
 */

import type { HttpClient, Query, RequestOptions } from "../core/http.js";
import { type ListEnvelope, Page, PagePromise } from "../pagination.js";

/** Encodes one path segment (ids, plugin names and versions). */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

export abstract class APIResource {
  /** @internal */
  protected readonly http: HttpClient;

  /** @internal */
  constructor(http: HttpClient) {
    this.http = http;
  }

  /** @internal A listing at `path`: the first page on `await`, every item on `for await`. */
  protected paginate<T>(path: string, query: Query = {}, options?: RequestOptions): PagePromise<T> {
    const fetchPage = async (cursor: string | undefined): Promise<Page<T>> => {
      const envelope = await this.http.request<ListEnvelope<T>>(
        { method: "GET", path, query: cursor === undefined ? query : { ...query, cursor } },
        options,
      );
      return new Page(envelope, fetchPage);
    };
    return new PagePromise(fetchPage);
  }
}

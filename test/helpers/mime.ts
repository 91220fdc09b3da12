import { Splitter } from '@zone-eu/mailsplit';

/** The MIME tree of a message as a real parser (mailparser's splitter) sees it: content types in document order. */
export function mimeTypes(bytes: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const splitter = new Splitter();
    const types: string[] = [];
    splitter.on('data', (d) => {
      const chunk = d as unknown as { type: string; contentType?: string };
      if (chunk.type === 'node') types.push(chunk.contentType ?? 'text/plain');
    });
    (splitter as unknown as NodeJS.ReadableStream).on('error', reject);
    (splitter as unknown as NodeJS.ReadableStream).on('end', () => resolve(types));
    splitter.end(bytes);
  });
}

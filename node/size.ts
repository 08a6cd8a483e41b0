// Byte sizes as people read and write them: powers of 1024.

export const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** `512 B`, `55.0 MiB`, `1.5 GiB`. */
export function formatSize(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K']) if (bytes >= SIZE_UNITS[unit]!) return `${(bytes / SIZE_UNITS[unit]!).toFixed(1)} ${unit}iB`;
  return `${bytes} B`;
}

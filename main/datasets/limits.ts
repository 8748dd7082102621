// Size limits of the dataset editor (checked in the IPC schemas and in imports).

/** Longest question or answer accepted (characters). */
export const MAX_TEXT_CHARS = 100_000
/** Longest category name (characters). */
export const MAX_CATEGORY_CHARS = 200
/** Most rows one insert/update/delete request may carry. */
export const MAX_ROWS_PER_REQUEST = 200_000

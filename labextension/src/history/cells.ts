/**
 * Cell numbers for the diff view (pure): people know "Cell 3", not the cell
 * ids nbdime prints in its headers.
 */

/** Where a cell of a diff sits in each version, counting from 1 (null: absent). */
export interface ICellSides {
  base: number | null;
  remote: number | null;
}

/**
 * Number the cells of a notebook diff on both sides, in the diff model's
 * order: an added cell exists only in the newer version, a deleted one only in
 * the older, every other cell in both.
 */
export function numberCells(
  cells: readonly { added: boolean; deleted: boolean }[]
): ICellSides[] {
  let base = 0;
  let remote = 0;
  return cells.map(cell => ({
    base: cell.added ? null : ++base,
    remote: cell.deleted ? null : ++remote
  }));
}

/** "Cell 3" */
export function cellTitle(n: number): string {
  return `Cell ${n}`;
}

/** How a cell is named in messages: "Cell 3", or "Cell 3 (now Cell 4)". */
export function cellName(sides: ICellSides): string {
  if (sides.base === null) {
    return sides.remote === null ? 'A cell' : cellTitle(sides.remote);
  }
  if (sides.remote === null || sides.remote === sides.base) {
    return cellTitle(sides.base);
  }
  return `${cellTitle(sides.base)} (now ${cellTitle(sides.remote)})`;
}

/** "Cell 3 could not be drawn", "Cells 3 and 5 …", "Cells 3, 5 and 8 …". */
export function listNames(names: readonly string[]): string {
  if (names.length <= 1) {
    return names[0] ?? '';
  }
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

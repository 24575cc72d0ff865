use super::*;

fn selected_rows(sel: &RowSelection) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    for s in sel.iter() {
        if !s.skip {
            out.extend(at..at + s.row_count);
        }
        at += s.row_count;
    }
    out
}

#[test]
fn runs_are_selected_whole_or_by_their_first_and_last_row() {
    let runs = [(7, 3), (9, 1), (11, 5), (13, 2), (15, 4)];
    let takes = [Take::Slot(0), Take::Unknown, Take::Skip, Take::Unknown, Take::Unknown];
    let whole = select_runs(&runs, &takes, |t| matches!(t, Take::Slot(_)), false);
    assert_eq!(selected_rows(&whole), vec![0, 1, 2]);
    assert_eq!(whole.row_count() + whole.skipped_row_count(), 15);
    let ends = select_runs(&runs, &takes, |t| t == Take::Unknown, true);
    // Run of 1 row: once; of 2: both; of 4: its first and last.
    assert_eq!(selected_rows(&ends), vec![3, 9, 10, 11, 14]);
    assert_eq!(ends.row_count() + ends.skipped_row_count(), 15);
}

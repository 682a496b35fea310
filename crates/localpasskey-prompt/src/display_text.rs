//! How text from a request (an RP ID, a user name: whatever the client sent)
//! is shown to the person. One set of rules for every way LocalPasskey asks:
//! the dialog compiles this file as part of `protocol`, and the daemon's
//! pinentry fallback compiles the same file by path (`#[path]` in
//! crates/localpasskey/src/pinentry.rs), because the dialog is a program
//! with no library to depend on and the daemon must not link GTK. So this
//! file uses nothing outside `std`.

/// Longest RP ID shown in full (a DNS name has at most 253 characters).
pub const MAX_RP_ID_CHARS: usize = 256;
/// Longest user name shown in full.
pub const MAX_USER_NAME_CHARS: usize = 128;

/// Shown under an RP ID that is not ASCII: look-alike letters ("gооgle.com"
/// with Cyrillic o) can imitate another site's name, and guessing which
/// ones are dangerous is a losing game.
pub const NON_ASCII_RP_ID_WARNING: &str =
    "This name contains characters outside ASCII, which can imitate another site's name.";

/// Characters that draw nothing or reorder what follows them: an RP ID or a
/// user name containing them could look like another one (`\u{202E}` turns
/// "moc.elgoog" into "google.com" on screen), so they are shown as escapes.
/// Control characters include newlines (which could fake a line of the
/// dialog's own text) and ESC (terminal escapes, where pinentry runs on a tty).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Text from the request, made safe to show as plain text: invisible and
/// reordering characters become visible escapes, and overlong text is cut
/// with a note saying how much is hidden (never silently).
///
/// The output has no control characters at all, and each character of the
/// input becomes at most 9 bytes of it (`\u{E0001}`), which is what lets a
/// caller with a byte limit (pinentry's lines) choose `max_chars`.
pub fn displayable(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let total = text.chars().count();
    for (shown, c) in text.chars().enumerate() {
        if shown == max_chars {
            out.push_str(&format!("… ({} more characters)", total - shown));
            break;
        }
        if is_invisible(c) {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordering_and_invisible_characters_are_shown_as_escapes() {
        assert_eq!(displayable("example.com", MAX_RP_ID_CHARS), "example.com");
        assert_eq!(
            displayable("\u{202E}moc.elgoog", MAX_RP_ID_CHARS),
            "\\u{202E}moc.elgoog"
        );
        assert_eq!(
            displayable("a\u{200B}b\nc\u{1b}[2J", MAX_USER_NAME_CHARS),
            "a\\u{200B}b\\u{000A}c\\u{001B}[2J"
        );
        assert_eq!(displayable("josé", MAX_USER_NAME_CHARS), "josé");
    }

    #[test]
    fn long_text_is_cut_with_a_note() {
        assert_eq!(displayable("abcdef", 4), "abcd… (2 more characters)");
        assert_eq!(displayable("abcd", 4), "abcd");
        assert_eq!(displayable("ab", 0), "… (2 more characters)");
    }

    #[test]
    fn no_character_grows_beyond_nine_bytes_and_no_control_survives() {
        for c in [
            '\u{0}',
            '\n',
            '\u{7f}',
            '\u{9b}',
            '\u{202E}',
            '\u{E0001}',
            '\u{10FFFF}',
            '%',
        ] {
            let s = displayable(&c.to_string(), 1);
            assert!(s.len() <= 9, "{c:?} became {s:?}");
            assert!(!s.chars().any(char::is_control), "{c:?} became {s:?}");
        }
    }
}

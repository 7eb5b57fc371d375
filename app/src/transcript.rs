//! A conversation as Markdown, for "Copy chat": a title, then each message under its speaker.

/// `turns`: (role, text) in order; role "user" or "assistant" (anything else is shown as is).
pub fn to_markdown<'a>(title: &str, turns: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = format!("# {}\n", title.trim());
    for (role, text) in turns {
        let who = match role {
            "user" => "You",
            "assistant" => "Assistant",
            other => other,
        };
        out.push_str(&format!("\n**{who}:**\n\n{}\n", text.trim_end()));
    }
    out
}

/// "1,048": thousands separated by commas, as the context meter shows token counts.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_of_a_chat() {
        let md = to_markdown(
            "Two plus two",
            [("user", "What is 2+2?"), ("assistant", "**4**\n\n")],
        );
        assert_eq!(
            md,
            "# Two plus two\n\n**You:**\n\nWhat is 2+2?\n\n**Assistant:**\n\n**4**\n"
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1048), "1,048");
        assert_eq!(thousands(32768), "32,768");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}

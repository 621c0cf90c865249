//! The man pages: vipcheck, each subcommand and the C checkers' names,
//! rendered from the command lines' own definitions.

/// Writes the man pages into `dir`: vipcheck, each subcommand
/// (`vipcheck-tcp.1`, ...) and the three C names; returns their paths.
pub(crate) fn man_pages(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    use clap::CommandFactory;
    let top = crate::front::cli::Cli::command();
    let mut pages: Vec<(String, clap::Command)> = vec![("vipcheck".to_string(), top.clone())];
    for sub in top.get_subcommands() {
        let name = format!("vipcheck-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for name in crate::probe::c_line::NAMES {
        pages.push((name.to_string(), crate::probe::c_line::command(name)));
    }
    let mut written = Vec::new();
    for (name, command) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        std::fs::write(&path, page)?;
        written.push(path);
    }
    Ok(written)
}

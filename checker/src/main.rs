static PROG: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vipcheck-xdp"));
fn main(){ let mut e = aya::Ebpf::load(PROG).unwrap(); 
 let p: &mut aya::programs::Xdp = e.program_mut("vipcheck_xdp").unwrap().try_into().unwrap();
 p.load().unwrap(); println!("loaded"); for (n,_) in e.maps() { println!("{n}"); } }

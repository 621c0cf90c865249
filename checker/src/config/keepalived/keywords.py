import re, subprocess, sys
REPO=sys.argv[1] if len(sys.argv) > 1 else '/work/.mirror/acassen+keepalived/repo'
files = subprocess.run(['git','-C',REPO,'ls-tree','-r','--name-only','v2.2.7'],capture_output=True,text=True).stdout.split()
files=[f for f in files if f.endswith('.c') and (f.startswith('keepalived/') or f.startswith('lib/'))]
funcs={}
for f in files:
    src=subprocess.run(['git','-C',REPO,'show','v2.2.7:'+f],capture_output=True,text=True,errors='replace').stdout
    for m in re.finditer(r'^([A-Za-z_][A-Za-z0-9_]*)\(([^)]*)\)\s*\n\{(.*?)\n\}', src, re.S|re.M):
        name=m.group(1)
        params=[p.strip().split()[-1].lstrip('*') if p.strip() else '' for p in m.group(2).split(',')]
        if name in funcs:
            funcs[name]=(funcs[name][0], funcs[name][1]+'\n'+m.group(3))
        else:
            funcs[name]=(params,m.group(3))
call_re=re.compile(r'\b([A-Za-z_][A-Za-z0-9_]*)\s*\(([^;{}]*?)\)\s*;')
def has_install(body,depth=0):
    return 'install_' in body
VALUE_FNS={'alloc_value_block','read_value_block'}
def is_value(handler,depth=0):
    if handler not in funcs or depth>2: return False
    body=funcs[handler][1]
    if any(v+'(' in body for v in VALUE_FNS): return True
    for m in call_re.finditer(body):
        if m.group(1)!=handler and m.group(1) in funcs and is_value(m.group(1),depth+1): return True
    return False
roots={}
def node(): return {'kws':{},'order':[]}
class St: pass
st=St(); st.stack=[]; st.last=None; st.cur=None
def add(level,name,handler):
    if name not in level['kws']:
        level['kws'][name]={'handler':handler,'sub':None,'value':is_value(handler)}
        level['order'].append(name)
    return level['kws'][name]
top=node()
ROOT_GROUP={}
def run(fn,env,depth=0,group=None):
    if depth>20: return
    params,body=funcs[fn]
    body=re.sub(r'/\*.*?\*/','',body,flags=re.S)
    body=re.sub(r'//[^\n]*','',body)
    for k,v in env.items():
        if v=='false':
            body=re.sub(r'if\s*\(\s*'+k+r'\s*\)\s*\{.*?\n\t\}','',body,flags=re.S)
    for m in call_re.finditer(body):
        name,args=m.group(1),m.group(2)
        a=[x.strip() for x in args.split(',')]
        def s(x):
            if x.startswith('"'): return x.strip('"')
            if x in ('true','false'): return x
            return env.get(x)
        if name=='install_keyword_root':
            kw=add(top,s(a[0]),a[1].lstrip('&').strip())
            ROOT_GROUP.setdefault(s(a[0]), group)
            if kw['sub'] is None: kw['sub']=node()
            st.stack=[kw['sub']]; st.last=None
        elif name=='install_keyword':
            kw=add(st.stack[-1],s(a[0]),a[1].lstrip('&').strip())
            st.last=kw
        elif name=='install_sublevel':
            if st.last['sub'] is None: st.last['sub']=node()
            st.stack.append(st.last['sub'])
        elif name=='install_sublevel_end':
            st.stack.pop()
        elif name in funcs and name!=fn and 'install_' in funcs[name][1] and name not in ('install_keyword','install_keyword_root','keyword_alloc','keyword_alloc_sub','install_sublevel','install_sublevel_end','dump_keywords'):
            p2=funcs[name][0]
            env2={}
            for i,x in enumerate(a):
                if i<len(p2):
                    v=s(x)
                    if v is not None: env2[p2[i]]=v
            run(name,env2,depth+1,group if group else name)
run('global_init_keywords',{})
# a root with no keywords under it: not a block
def emit(level,ind):
    out=[]
    for n in level['order']:
        k=level['kws'][n]
        if k['sub'] is not None and k['sub']['order']:
            out.append(f'{ind}Kw::sub("{n}", &[\n'+emit(k['sub'],ind+'    ')+f'{ind}]),\n')
        elif k['value']:
            out.append(f'{ind}Kw::values("{n}"),\n')
        else:
            out.append(f'{ind}Kw::plain("{n}"),\n')
    return ''.join(out)
print(emit(top,'    '))
print('];')
print()
print('/// The keyword group (process) that installs each top-level keyword.')
print('pub(crate) fn group(root: &str) -> Group {')
print('    match root {')
names={'init_global_keywords':'Global','init_vrrp_keywords':'Vrrp','init_check_keywords':'Check','init_bfd_keywords':'Bfd','add_track_file_keywords':'TrackFile'}
for n in top['order']:
    print(f'        "{n}" => Group::{names[ROOT_GROUP[n]]},')
print('        _ => Group::Global,')
print('    }')
print('}')

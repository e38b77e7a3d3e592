import * as signalR from '@microsoft/signalr';
const base='http://127.0.0.1:5077';
const [ta,tb]=process.argv.slice(2);
const r=await fetch(base+'/v1/conversations',{method:'POST',headers:{authorization:'Bearer '+ta,'content-type':'application/json'},body:JSON.stringify({type:'group',title:'t',members:['bob']})});
const conv=(await r.json()).id;
const mk=t=>new signalR.HubConnectionBuilder().withUrl(base+'/hubs/chat',{accessTokenFactory:()=>t,transport:signalR.HttpTransportType.WebSockets,skipNegotiation:true}).build();
const a=mk(ta), b=mk(tb);
const got=new Map();
b.on('newMessage',m=>{const t=got.get(m.content?.text ?? m.text); if(t) t(performance.now());});
await a.start(); await b.start();
await a.invoke('JoinRoom',{conversation_id:conv}).catch(e=>console.log('join a',e.message));
await b.invoke('JoinRoom',{conversation_id:conv}).catch(e=>console.log('join b',e.message));
for(let i=0;i<20;i++){
  const text='m'+i+'-'+Math.random();
  const recv=new Promise(res=>got.set(text,res));
  const t0=performance.now();
  const ack=await a.invoke('SendMessage',{conversation_id:conv,content:{type:'text',text},message_id:text});
  const t1=performance.now();
  const t2=await Promise.race([recv,new Promise(r=>setTimeout(()=>r(NaN),3000))]);
  console.log(`ack ${(t1-t0).toFixed(1)} ms, recv ${(t2-t0).toFixed(1)} ms`, ack?.success===false?JSON.stringify(ack):'');
  await new Promise(r=>setTimeout(r,200));
}
process.exit(0);

import * as signalR from '@microsoft/signalr';
const base='http://127.0.0.1:5077';
const [ta,...tus]=process.argv.slice(2);
const r=await fetch(base+'/v1/conversations',{method:'POST',headers:{authorization:'Bearer '+ta,'content-type':'application/json'},body:JSON.stringify({type:'group',title:'t',members:tus.map((_,i)=>'u'+i+'xQ')})});
const j=await r.json(); const conv=j.id; if(!conv) {console.log(j); process.exit(1);}
const mk=t=>new signalR.HubConnectionBuilder().withUrl(base+'/hubs/chat',{accessTokenFactory:()=>t,transport:signalR.HttpTransportType.WebSockets,skipNegotiation:true}).configureLogging(signalR.LogLevel.Warning).build();
const us=tus.map(mk); for(const u of us){await u.start(); await u.invoke('JoinRoom',{conversation_id:conv});}
for(let round=0;round<3;round++) for(const u of us){
  const text='m'+Math.random();
  const t0=performance.now();
  const ack=await u.invoke('SendMessage',{conversation_id:conv,content:{type:'text',text},message_id:text});
  console.log(`round ${round} ack ${(performance.now()-t0).toFixed(1)} ms`, ack?.success===false?JSON.stringify(ack):'');
  await new Promise(r=>setTimeout(r,100));
}
process.exit(0);

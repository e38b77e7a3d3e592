import * as signalR from '@microsoft/signalr';
const base='http://127.0.0.1:5077';
const [ta,...tus]=process.argv.slice(2);
const names=tus.map((_,i)=>'v'+i+'x'+process.env.TAG);
const r=await fetch(base+'/v1/conversations',{method:'POST',headers:{authorization:'Bearer '+ta,'content-type':'application/json'},body:JSON.stringify({type:'group',title:'t',members:names})});
const conv=(await r.json()).id;
const mk=t=>new signalR.HubConnectionBuilder().withUrl(base+'/hubs/chat',{accessTokenFactory:()=>t,transport:signalR.HttpTransportType.WebSockets,skipNegotiation:true}).configureLogging(signalR.LogLevel.Error).build();
const us=tus.map(mk); const acks=[];
for(const u of us){await u.start(); await u.invoke('JoinRoom',{conversation_id:conv});}
const ps=[];
for(let i=0;i<30;i++){ const u=us[Math.floor(Math.random()*us.length)]; const t0=performance.now(); ps.push(u.invoke('SendMessage',{conversation_id:conv,content:'b:'+t0}).then(a=>acks.push(performance.now()-t0))); await new Promise(r=>setTimeout(r,100)); }
await Promise.all(ps);
acks.sort((x,y)=>x-y); console.log('n',acks.length,'p50',acks[Math.floor(acks.length/2)].toFixed(1),'max',acks[acks.length-1].toFixed(1));
process.exit(0);

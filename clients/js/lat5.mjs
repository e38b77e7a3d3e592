import * as signalR from '@microsoft/signalr';
const base='http://127.0.0.1:5077';
const [ta,tb]=process.argv.slice(2);
const r=await fetch(base+'/v1/conversations',{method:'POST',headers:{authorization:'Bearer '+ta,'content-type':'application/json'},body:JSON.stringify({type:'group',title:'t',members:['bob']})});
const conv=(await r.json()).id;
const mk=t=>new signalR.HubConnectionBuilder().withUrl(base+'/hubs/chat',{accessTokenFactory:()=>t,transport:signalR.HttpTransportType.WebSockets,skipNegotiation:true}).configureLogging(signalR.LogLevel.Error).build();
const a=mk(ta), b=mk(tb);
const lat=[];
b.on('newMessage',m=>{const t=Number((m.content?.text ?? m.content).split(':')[1]); lat.push(performance.now()-t);});
await a.start(); await b.start();
await a.invoke('JoinRoom',{conversation_id:conv}); await b.invoke('JoinRoom',{conversation_id:conv});
const gap=Number(process.env.GAP||100);
for(let i=0;i<40;i++){ a.send('SendMessage',{conversation_id:conv,content:'b:'+performance.now()}); await new Promise(r=>setTimeout(r,gap)); }
await new Promise(r=>setTimeout(r,1000));
lat.sort((x,y)=>x-y); console.log('gap',gap,'n',lat.length,'p50',lat[Math.floor(lat.length/2)].toFixed(1),'max',lat[lat.length-1].toFixed(1));
process.exit(0);

# syntax=docker/dockerfile:1
# CAAS node image: `docker build -t caas .`, or `docker compose up --build` for a three-node cluster.
# The container runs `caas run`; configure it with the environment variables of docker-compose.yml.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props ./
# The HOCON files are embedded in Caas.Actors and copied next to the node by its project file.
COPY hocon/ hocon/
COPY src/ src/
RUN --mount=type=cache,id=caas-nuget,target=/root/.nuget/packages \
    dotnet publish src/Caas.Node/Caas.Node.csproj -c Release -o /app -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
    ASPNETCORE_URLS=http://0.0.0.0:8080 \
    CAAS_DATA_DIR=/data \
    CAAS_REMOTE_PORT=4053
WORKDIR /app
COPY --from=build /app ./
# The embedded SQLite store (used when CAAS_POSTGRES is not set) and the dev JWT secret live in /data.
RUN mkdir -p /data && chown "$APP_UID" /data
VOLUME /data
USER $APP_UID
# HTTP (REST, SignalR, health, metrics) and Akka remoting.
EXPOSE 8080 4053
ENTRYPOINT ["dotnet", "caas.dll", "run"]

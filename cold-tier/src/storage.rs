//! iceberg-rust's `Storage` on top of `object_store`.
//!
//! ```text
//!  iceberg FileIO ──► ObjectStoreStorage ──► Arc<dyn ObjectStore>
//!   "file:///d/cold/warehouse/ns/t/data/x.parquet"   LocalFileSystem  path "d/cold/…/x.parquet"
//!   "s3://bucket/wh/ns/t/metadata/v1.json"           AmazonS3(bucket) path "wh/ns/t/…"
//!   "memory://wh/ns/t/…"                             InMemory         path "wh/ns/t/…"
//! ```
//!
//! One store serves one warehouse: a location must use the warehouse's
//! scheme (and, for S3, its bucket). Whole-object writes (`put`) are atomic
//! on every backend; streamed writes use multipart upload above 10 MiB
//! (`BufWriter`), and nothing is visible before `close`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::error::{Error, Result};

/// Where a warehouse lives and how to reach it (serialisable: iceberg may
/// ship a `FileIO` configuration around; the store itself is rebuilt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSpec {
    /// Warehouse URL (`file://`, `s3://`, `memory://`).
    pub url: String,
    /// `object_store` options (see `ColdTierConfig::storage_options`).
    pub options: BTreeMap<String, String>,
}

impl StoreSpec {
    /// Builds the object store for this warehouse.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>> {
        let url = Url::parse(&self.url)
            .map_err(|e| Error::InvalidConfig { detail: format!("warehouse URL {:?}: {e}", self.url) })?;
        let open_err = |source| Error::OpenObjectStore { url: self.url.clone(), source };
        match url.scheme() {
            "file" => {
                let root = url.to_file_path().map_err(|()| Error::InvalidConfig {
                    detail: format!("warehouse URL {:?} is not an absolute path", self.url),
                })?;
                std::fs::create_dir_all(&root).map_err(|e| Error::InvalidConfig {
                    detail: format!("creating warehouse directory {}: {e}", root.display()),
                })?;
                Ok(Arc::new(object_store::local::LocalFileSystem::new()))
            }
            "memory" => Ok(Arc::new(object_store::memory::InMemory::new())),
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str());
                for (k, v) in &self.options {
                    let key = k.parse().map_err(open_err)?;
                    b = b.with_config(key, v);
                }
                Ok(Arc::new(b.build().map_err(open_err)?))
            }
            other => Err(Error::InvalidConfig { detail: format!("unsupported warehouse scheme {other:?}") }),
        }
    }
}

/// An iceberg [`Storage`] backed by one `object_store`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStoreStorage {
    spec: StoreSpec,
    #[serde(skip)]
    store: Option<Arc<dyn ObjectStore>>,
}

impl ObjectStoreStorage {
    /// A storage over an already built store (shared, e.g. one `InMemory`).
    pub fn new(spec: StoreSpec, store: Arc<dyn ObjectStore>) -> Self {
        Self { spec, store: Some(store) }
    }

    fn store(&self) -> iceberg::Result<Arc<dyn ObjectStore>> {
        match &self.store {
            Some(s) => Ok(Arc::clone(s)),
            None => self.spec.build().map_err(|e| iceberg::Error::new(iceberg::ErrorKind::Unexpected, e.to_string())),
        }
    }

    /// The object store behind this storage (maintenance lists and deletes
    /// files through it).
    pub fn object_store(&self) -> iceberg::Result<Arc<dyn ObjectStore>> {
        self.store()
    }

    /// Maps an iceberg location (`file:///…`, `s3://bucket/…`, `memory://…`)
    /// to the object path inside the store.
    pub fn object_path(&self, location: &str) -> iceberg::Result<Path> {
        self.path(location)
    }

    /// Maps an iceberg location to the object path inside the store.
    fn path(&self, location: &str) -> iceberg::Result<Path> {
        let bad =
            |why: &str| iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("location {location:?} {why}"));
        let url = Url::parse(location).map_err(|_| bad("is not a URL"))?;
        let base = Url::parse(&self.spec.url).map_err(|_| bad("(warehouse URL invalid)"))?;
        let same_scheme =
            url.scheme() == base.scheme() || (url.scheme().starts_with("s3") && base.scheme().starts_with("s3"));
        if !same_scheme {
            return Err(bad(&format!("is outside the warehouse {}", self.spec.url)));
        }
        match url.scheme() {
            "file" => Path::from_url_path(url.path()).map_err(|e| bad(&e.to_string())),
            "memory" => {
                let host = url.host_str().unwrap_or_default();
                Path::from_url_path(format!("{host}{}", url.path())).map_err(|e| bad(&e.to_string()))
            }
            _ => {
                if url.host_str() != base.host_str() {
                    return Err(bad(&format!("is not in bucket {}", base.host_str().unwrap_or_default())));
                }
                Path::from_url_path(url.path()).map_err(|e| bad(&e.to_string()))
            }
        }
    }
}

fn os_err(location: &str, e: object_store::Error) -> iceberg::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => iceberg::ErrorKind::DataInvalid,
        _ => iceberg::ErrorKind::Unexpected,
    };
    iceberg::Error::new(kind, format!("object store: {location}")).with_source(e)
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStoreStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        match self.store()?.head(&self.path(path)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(os_err(path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let meta = self.store()?.head(&self.path(path)?).await.map_err(|e| os_err(path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let r = self.store()?.get(&self.path(path)?).await.map_err(|e| os_err(path, e))?;
        r.bytes().await.map_err(|e| os_err(path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        Ok(Box::new(ObjectRead { store: self.store()?, path: self.path(path)?, location: path.to_owned() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        self.store()?.put(&self.path(path)?, PutPayload::from(bs)).await.map_err(|e| os_err(path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let w = BufWriter::new(self.store()?, self.path(path)?);
        Ok(Box::new(ObjectWrite { inner: w, location: path.to_owned() }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        match self.store()?.delete(&self.path(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(os_err(path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let store = self.store()?;
        let prefix = self.path(path)?;
        let locations = store.list(Some(&prefix)).map(|m| m.map(|m| m.location)).boxed();
        let mut deleted = store.delete_stream(locations);
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(os_err(path, e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        let mut paths = paths;
        while let Some(p) = paths.next().await {
            self.delete(&p).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_owned()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_owned()))
    }
}

struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    path: Path,
    location: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store.get_range(&self.path, range).await.map_err(|e| os_err(&self.location, e))
    }
}

struct ObjectWrite {
    inner: BufWriter,
    location: String,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        self.inner.put(bs).await.map_err(|e| os_err(&self.location, e))
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        self.inner.shutdown().await.map_err(|e| {
            iceberg::Error::new(iceberg::ErrorKind::Unexpected, format!("object store: closing {}", self.location))
                .with_source(e)
        })
    }
}

/// Builds [`ObjectStoreStorage`] for iceberg's `FileIO`; every storage it
/// builds shares one object store (one connection pool, one `InMemory`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStoreStorageFactory {
    storage: ObjectStoreStorage,
}

impl ObjectStoreStorageFactory {
    /// Opens the warehouse's object store.
    pub fn open(spec: StoreSpec) -> Result<Self> {
        let store = spec.build()?;
        Ok(Self { storage: ObjectStoreStorage::new(spec, store) })
    }

    /// The storage every `FileIO` of this factory uses.
    pub fn storage(&self) -> &ObjectStoreStorage {
        &self.storage
    }
}

#[typetag::serde]
impl StorageFactory for ObjectStoreStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.storage.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(url: &str) -> ObjectStoreStorage {
        ObjectStoreStorageFactory::open(StoreSpec { url: url.into(), options: BTreeMap::new() }).unwrap().storage
    }

    #[tokio::test]
    async fn memory_round_trip_ranges_and_prefix_delete() {
        let s = storage("memory://wh");
        s.write("memory://wh/a/b/1.bin", Bytes::from_static(b"hello world")).await.unwrap();
        let mut w = s.writer("memory://wh/a/b/2.bin").await.unwrap();
        w.write(Bytes::from_static(b"abc")).await.unwrap();
        assert!(!s.exists("memory://wh/a/b/2.bin").await.unwrap(), "invisible before close");
        w.write(Bytes::from_static(b"def")).await.unwrap();
        w.close().await.unwrap();
        assert_eq!(s.read("memory://wh/a/b/2.bin").await.unwrap(), Bytes::from_static(b"abcdef"));
        let r = s.reader("memory://wh/a/b/1.bin").await.unwrap();
        assert_eq!(r.read(6..11).await.unwrap(), Bytes::from_static(b"world"));
        assert_eq!(s.metadata("memory://wh/a/b/1.bin").await.unwrap().size, 11);
        s.delete_prefix("memory://wh/a").await.unwrap();
        assert!(!s.exists("memory://wh/a/b/1.bin").await.unwrap());
        s.delete("memory://wh/a/b/1.bin").await.unwrap(); // deleting a missing file is fine
    }

    #[tokio::test]
    async fn local_fs_uses_absolute_paths_and_rejects_foreign_schemes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/wh", dir.path().display());
        let s = storage(&url);
        let loc = format!("{url}/x/y.bin");
        s.write(&loc, Bytes::from_static(b"1")).await.unwrap();
        assert!(dir.path().join("wh/x/y.bin").exists());
        assert!(s.exists(&loc).await.unwrap());
        assert!(s.write("s3://other/x", Bytes::new()).await.is_err());
    }
}
